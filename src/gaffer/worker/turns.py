"""The engine's turns: render the prompts, run the engine, check the finish rule, continue.

:func:`run_turns` renders the agent's system and task prompts (a template that names a
variable the run does not have fails the run with the variable's name), runs the engine, and,
when the engine exited 0 without meeting the agent's finish rule, runs it again with a message
saying exactly what is missing, up to ``continuation_turns`` times, continuing the CLI's
session where it can. Then the run fails with that reason ("review agent wrote no review after
3 turns"). A CLI that reports a failure (a 401, a dead model server) ends the turns at once:
continuing cannot fix that.

Finish rules: ``changes``: the engine's tree differs from the branch (something to commit);
for an agent that merges the base branch (:mod:`gaffer.worker.merge`), no file of the engine's
tree holds a conflict marker;
``review`` / ``reply`` / ``plan``: a valid output file of that kind
(:func:`gaffer.agents.outputs.read_output`); ``none``: nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from gaffer.agents.outputs import OUTPUT_ENV, OUTPUT_FILES, read_output, schema_text
from gaffer.agents.templates import TemplateError, render
from gaffer.engines.base import (
    Engine,
    EngineFigures,
    EngineResult,
    EngineUser,
    Invocation,
    ModelEndpoint,
    describe_exit,
)
from gaffer.queue.jobs import JobData
from gaffer.worker.checkout import Checkout, Workspace
from gaffer.worker.events import Reporter
from gaffer.worker.git import changed_files
from gaffer.worker.merge import MARKERS_LEFT, MERGE_LOST, MergeStart, merge_problem
from gaffer.worker.stop import StopSignal

DEFAULT_MAX_TURNS = 30
"""``max_turns`` of a job written before agent definitions."""

_WHAT_IS_MISSING = {
    "changes": "changed no files",
    "review": "wrote no review",
    "reply": "wrote no reply",
    "plan": "wrote no plan",
}


@dataclass
class TurnsOutcome:
    """What the engine's turns came to.

    ``error`` is the run's failure reason (None: finished); ``stopped``: SIGTERM arrived;
    ``result``: the last invocation's result; ``figures``: the CLI's figures summed over the
    invocations; ``outputs``: the validated output files by kind (JSON-ready).
    """

    result: EngineResult | None = None
    error: str | None = None
    stopped: bool = False
    invocations: int = 0
    figures: EngineFigures = field(default_factory=EngineFigures)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)


def template_variables(job: JobData, ws: Workspace, checkout: Checkout) -> dict[str, Any]:
    """The variables the run's templates may read: every run's built-in ones, and the
    optional ones this run has (absent ones stay undefined, so ``StrictUndefined`` catches a
    template that uses one unguarded)."""
    task = job.task
    agent = job.agent
    values: dict[str, Any] = {
        "agent": job.agent_type,
        "agent_label": agent.label if agent else job.agent_type,
        "repository": job.repository.full_name,
        "work_item": task.work_item,
        "trigger": task.trigger,
        "provider": task.provider,
        "branch": checkout.branch,
        "base_branch": job.repository.base_branch,
        "max_turns": agent.max_turns if agent else DEFAULT_MAX_TURNS,
    }
    optional: dict[str, Any] = {
        "title": task.title or None,
        "body": task.body or None,
        "url": task.url,
        "pr_number": task.pr_number,
        "head_branch": task.head_branch,
        "head_sha": task.head_sha,
        "pr_base_branch": checkout.base_ref or task.base_branch,
        "comment_body": task.comment_body,
        "comment_id": task.comment_id,
        "review_id": task.review_id,
    }
    for kind, name in OUTPUT_FILES.items():
        optional[f"{kind}_file"] = str(ws.out / name)
        optional[f"{kind}_schema"] = schema_text(kind)
    context = dict(task.context)
    optional["failed_run"] = context.pop("failed_run", None)
    if context:
        optional["context"] = context
        optional["context_dir"] = str(ws.context)
    values.update({k: v for k, v in optional.items() if v is not None})
    return values


def write_context_files(job: JobData, ws: Workspace) -> None:
    """Write each context entry (but ``failed_run``) to ``<scratch>/context/<name>.md`` (text)
    or ``.json`` (anything else), for the engine to read."""
    for name, value in job.task.context.items():
        if name == "failed_run":
            continue
        if isinstance(value, str):
            (ws.context / f"{name}.md").write_text(value)
        else:
            (ws.context / f"{name}.json").write_text(json.dumps(value, indent=2, default=str))


def finish_problem(
    job: JobData, ws: Workspace, merge: MergeStart | None = None
) -> tuple[str | None, BaseModel | None]:
    """Why the finish rule is not met yet (None: it is), and the valid output, if any.
    ``merge``: the merge the worker began for an agent that merges the base branch."""
    rule = job.agent.finish_rule if job.agent is not None else "none"
    if rule == "none":
        return None, None
    if rule == "changes":
        if merge is not None:
            return merge_problem(ws, merge), None
        if changed_files(ws.checkout, ws.tree):
            return None, None
        return "no file in the checkout has changed yet", None
    output, problem = read_output(rule, ws.out / OUTPUT_FILES[rule])
    return problem, output


def continuation_message(job: JobData, ws: Workspace, problem: str) -> str:
    """The prompt of a continuation turn: exactly what is missing, and how to provide it."""
    rule = job.agent.finish_rule if job.agent is not None else "none"
    if problem.startswith(MERGE_LOST):
        return (
            f"The merge is not in the working tree any more: {problem}. Begin it again with"
            " `git merge --no-ff --no-commit` of the base commit named in your task, resolve"
            " its conflicts, and do not commit (gaffer makes the merge commit when you finish)."
        )
    if problem.startswith(MARKERS_LEFT):
        return (
            f"The merge is not resolved: {problem}. Edit those files so that they keep the"
            " intent of both sides and hold no <<<<<<<, ======= or >>>>>>> line, in the working"
            " tree (gaffer makes the merge commit when you finish)."
        )
    if rule == "changes":
        return (
            "You have not changed any file in the checkout yet, and this task is done only when"
            " the repository has changes to commit. Make the changes the task asks for now,"
            " in the working tree (gaffer commits and pushes them when you finish)."
        )
    path = ws.out / OUTPUT_FILES[rule]
    return (
        f"The task is not finished: the {rule} file is missing or invalid ({problem}). Write"
        f" it now, as JSON, to {path}. Its JSON schema: {schema_text(rule)}. That is the one"
        " thing left to do."
    )


def run_turns(
    engine: Engine,
    job: JobData,
    ws: Workspace,
    checkout: Checkout,
    reporter: Reporter,
    user: EngineUser | None,
    model: ModelEndpoint,
    stop: StopSignal,
    merge: MergeStart | None = None,
) -> TurnsOutcome:
    """Run the engine's turns (see the module docstring); ``merge``: the merge the worker
    began (an agent that merges the base branch). Raises
    :class:`~gaffer.engines.base.EngineError` when the engine cannot start."""
    outcome = TurnsOutcome()
    agent = job.agent
    variables = template_variables(job, ws, checkout)
    try:
        system_prompt = render("system_prompt", agent.system_prompt, variables) if agent else ""
        task_prompt = render("task_prompt", agent.task_prompt, variables) if agent else ""
    except TemplateError as exc:
        outcome.error = f"the {job.agent_type} agent's {exc}"
        return outcome
    write_context_files(job, ws)
    env = {OUTPUT_ENV[kind]: str(ws.out / name) for kind, name in OUTPUT_FILES.items()}
    env["GAFFER_CONTEXT_DIR"] = str(ws.context)
    turns = 1 + (agent.continuation_turns if agent else 0)
    prompt, session_id = task_prompt, None
    problem: str | None = None
    for turn in range(1, turns + 1):
        if stop.requested:
            outcome.stopped = True
            return outcome
        resume = turn > 1 and engine.can_resume
        invocation = Invocation(
            job=job,
            checkout=ws.tree,
            scratch=ws.scratch,
            home=ws.home,
            reporter=reporter,
            system_prompt=system_prompt,
            prompt=prompt,
            model=model,
            user=user,
            turn=turn,
            resume=resume,
            session_id=session_id,
            max_turns=agent.max_turns if agent else DEFAULT_MAX_TURNS,
            env=env,
        )
        reporter.emit("engine_turn_started", engine=engine.name, turn=turn, resume=resume)
        result = engine.run(invocation)
        outcome.result = result
        outcome.invocations = turn
        if result.figures is not None:
            outcome.figures = outcome.figures.add(result.figures)
        session_id = result.session_id or session_id
        reporter.emit(
            "engine_finished",
            exit_code=result.exit_code,
            turn=turn,
            error=result.error,
            figures=result.figures.as_dict() if result.figures else None,
        )
        if stop.requested:
            outcome.stopped = True
            return outcome
        if not result.ok:
            outcome.error = (
                f"engine {engine.name} failed: {result.error}"
                if result.error
                else describe_exit(engine.name, result.exit_code)
            )
            return outcome
        problem, output = finish_problem(job, ws, merge)
        if problem is None:
            if output is not None and job.agent is not None:
                outcome.outputs[job.agent.finish_rule] = output.model_dump(mode="json")
            return outcome
        reporter.log(f"finish rule not met after turn {turn}: {problem}")
        message = continuation_message(job, ws, problem)
        prompt = message if engine.can_resume else f"{message}\n\nThe task:\n{task_prompt}"
    rule = job.agent.finish_rule if job.agent is not None else "none"
    what = _WHAT_IS_MISSING.get(rule, "did not finish")
    if problem and problem.startswith((MARKERS_LEFT, MERGE_LOST)):
        plural = "s" if turns > 1 else ""
        outcome.error = f"{job.agent_type} agent left the merge unresolved after {turns} turn"
        outcome.error += f"{plural}: {problem}"
        return outcome
    outcome.error = f"{job.agent_type} agent {what} after {turns} turn{'s' if turns > 1 else ''}"
    if problem and rule != "changes" and not problem.startswith("no file"):
        outcome.error += f" (last problem: {problem})"
    return outcome
