"""The fake's check run and Actions operations (registered into ``handlers.HANDLERS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gaffer.demo.github.calls import Answer, Call, HttpError
from gaffer.demo.github.handlers import _page, op
from gaffer.demo.github.state import CheckRun, now_iso

if TYPE_CHECKING:
    from gaffer.demo.github.server import GitHubStandIn


# --- checks and actions ---------------------------------------------------------------------


def _apply_check(run: CheckRun, body: dict[str, Any]) -> None:
    for key in (
        "name",
        "status",
        "conclusion",
        "started_at",
        "completed_at",
        "external_id",
        "details_url",
    ):
        if key in body:
            setattr(run, key, body[key])
    if "output" in body:
        run.output = dict(body["output"])
    if body.get("conclusion") is not None:
        run.status = "completed"
        run.completed_at = run.completed_at or now_iso()
    if run.status == "in_progress" and run.started_at is None:
        run.started_at = now_iso()


@op("checks/create")
def create_check(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    run = CheckRun(
        id=fake.state.next_id(),
        name=call.json["name"],
        head_sha=call.json["head_sha"],
        app_id=fake.app.id,
    )
    _apply_check(run, call.json)
    repo.check_runs[run.id] = run
    return Answer(status=201, body=fake.render.check_run(repo, run))


@op("checks/update")
def update_check(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    run = repo.check_runs.get(call.int_param("check_run_id"))
    if run is None:
        raise HttpError(404, "Not Found")
    _apply_check(run, call.json or {})
    return Answer(body=fake.render.check_run(repo, run))


@op("checks/list-for-ref")
def list_checks(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    ref = call.params["ref"]
    runs = [r for r in repo.check_runs.values() if r.head_sha == ref]
    if name := call.query.get("check_name"):
        runs = [r for r in runs if r.name == name]
    if status := call.query.get("status"):
        runs = [r for r in runs if r.status == status]
    page = _page(call, runs)
    return Answer(
        body={
            "total_count": len(runs),
            "check_runs": [fake.render.check_run(repo, r) for r in page],
        }
    )


@op("actions/download-job-logs-for-workflow-run")
def job_logs(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    run = repo.check_runs.get(call.int_param("job_id"))
    if run is None or run.log is None:
        raise HttpError(404, "Not Found")
    location = fake.sign_log_url(repo, run)
    return Answer(status=302, headers={"Location": location}, text="", media_type="text/plain")
