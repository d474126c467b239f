"""A local GitHub stand-in, shipped so that ``gaffer demo`` needs no GitHub and no network.

:class:`~gaffer.demo.github.server.GitHubStandIn` answers the REST operations gaffer uses
(issues, comments, reactions, pull requests, reviews, check runs, app JWTs and installation
tokens), as GitHub's own description (:mod:`~gaffer.demo.github.description`) shapes them,
and serves git smart HTTP through ``git http-backend``. The tests extend it with GitHub's
contract checked on every call and injectable failures (``tests/support/fake_github``).
Import :mod:`gaffer.demo.github.server` for the class (it imports Starlette and uvicorn).
"""
