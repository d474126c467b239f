"""A scripted model provider: a real HTTP server on 127.0.0.1 speaking the wire APIs the agent
CLIs use (Anthropic Messages, OpenAI Responses, Chat Completions), answering from a plan.

``gaffer demo --engine`` runs a real CLI against it when no provider key is in the environment
(:mod:`gaffer.demo.engine`), and the tests drive every CLI with it (``tests/support/
model_server.py`` re-exports it). :mod:`~gaffer.demo.model.server` is the HTTP server,
:mod:`~gaffer.demo.model.plan` what the model says, :mod:`~gaffer.demo.model.wire` the wire
formats.
"""
