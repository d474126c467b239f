"""One API call as a handler sees it: the stand-in's (:mod:`gaffer.demo.github.calls`)."""

from gaffer.demo.github.calls import Answer, Call, HttpError, Violation

__all__ = ["Answer", "Call", "HttpError", "Violation"]
