"""What gaffer writes to GitHub for a run, one module per kind. Every create first looks for
what an earlier attempt may already have created (a comment's hidden marker, the branch's
open PR, a check run's ``external_id``, a review's marker), so a crash between "GitHub
created it" and "gaffer recorded its id" never posts twice."""
