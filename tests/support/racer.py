"""One racer of the exactly-once test, run as its own OS process.

    python -m tests.support.racer CONFIG_JSON

CONFIG: ``urls`` (ingest base URLs), ``secret``, ``body_file``, ``deliveries`` (how many to
send), ``hooks`` (how many post-completion hooks to fire), ``racer`` (index), ``start_file``
(wait until it exists, so every racer starts at once), ``database_url``, ``redis_url``,
``master_key``, ``home``, ``project``. Prints one JSON line: answers by decision, and the runs
the hooks created.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from gaffer.dispatch.followups import FollowUps
from gaffer.providers.github import delivery_headers
from gaffer.queue.jobs import EngineSpec, JobData, RepositorySpec, TaskSpec
from gaffer.queue.queues import RunQueue
from gaffer.runs.engine import RunEngine
from gaffer.runs.intake import RunIntake
from gaffer.runtime import open_runtime
from gaffer.settings import Settings
from gaffer.store.models import RunStatus
from gaffer.store.projects import ProjectSnapshot, get_project


def implementation_job(project: ProjectSnapshot, pr_number: int, name: str) -> JobData:
    """The job of a finished implementation run on ``pr_number`` (what the hook looks at)."""
    return JobData(
        run_id=name,
        project_id=project.id,
        project_name=project.name,
        agent_type="implementation",
        repository=RepositorySpec(full_name=project.repository, clone_url=project.clone_url),
        engine=EngineSpec(name="command"),
        task=TaskSpec(
            agent_type="implementation",
            repository=project.repository,
            work_item=str(pr_number),
            pr_number=pr_number,
            trigger="manual",
            provider="manual",
        ),
        branch=f"gaffer/implementation/{pr_number}",
        timeout_s=60,
    )


def wait_for_file(path: Path) -> None:
    """Block until ``path`` exists (the start line all racers wait behind)."""
    while not path.exists():
        time.sleep(0.005)


async def race(config: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(
        home=config["home"],
        database_url=config["database_url"],
        redis_url=config["redis_url"],
        master_key=config["master_key"],
    )
    body = await asyncio.to_thread(Path(config["body_file"]).read_bytes)
    with open_runtime(settings) as rt:
        with rt.db.session() as session:
            project = ProjectSnapshot.of(get_project(session, config["project"]), rt.box)
        redis = aioredis.from_url(config["redis_url"])
        queue = RunQueue(config["redis_url"], settings.queue_name)
        intake = RunIntake(settings, RunEngine(settings, rt.db, queue, redis), redis)
        follow_ups = FollowUps(intake, redis, rt.db, rt.box)
        answers: Counter[str] = Counter()
        hook_runs: list[str] = []
        errors: list[str] = []
        start = Path(config["start_file"])
        await asyncio.to_thread(wait_for_file, start)
        async with httpx.AsyncClient(timeout=120) as client:

            async def deliver(i: int) -> None:
                url = config["urls"][i % len(config["urls"])] + "/webhooks/github"
                headers = delivery_headers(body, "check_suite", config["secret"], str(uuid.uuid4()))
                response = await client.post(url, content=body, headers=headers)
                answer = response.json()
                answers[f"{response.status_code} {answer['decision']}"] += 1
                if response.status_code >= 500:
                    errors.append(answer["reason"])

            async def hook(i: int) -> None:
                job = implementation_job(project, 2, f"impl-{config['racer']}-{i}")
                submission = await follow_ups.after_run(job, RunStatus.SUCCEEDED)
                if submission is not None:
                    hook_runs.extend(submission.run_ids)

            tasks = [deliver(i) for i in range(config["deliveries"])]
            every = max(1, len(tasks) // max(1, config["hooks"]))
            for i in range(config["hooks"]):  # spread the hooks among the deliveries
                tasks.insert(min(len(tasks), i * (every + 1)), hook(i))
            semaphore = asyncio.Semaphore(16)

            async def bounded(coro: Any) -> None:
                async with semaphore:
                    await coro

            await asyncio.gather(*(bounded(t) for t in tasks))
        await queue.close()
        await redis.aclose()
    return {"answers": dict(answers), "hook_runs": hook_runs, "errors": errors}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(race(json.loads(sys.argv[1])))), flush=True)
