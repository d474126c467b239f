"""Snapshots: container images of a set-up workspace that the next run starts from.

* :mod:`~gaffer.snapshots.names`: image names that cannot collide;
* :mod:`~gaffer.snapshots.keys`: project snapshot keys (worker image + set-up and lock files);
* :mod:`~gaffer.snapshots.images`: commit, list and delete images through the container engine;
* :mod:`~gaffer.snapshots.registry`: the durable rows (database) and their reconciliation with
  the images that exist;
* :mod:`~gaffer.snapshots.caps`: TTL, count and size caps, enforced by deleting images;
* :mod:`~gaffer.snapshots.service`: what the dispatcher asks (where does this run start from,
  commit this worker, build the project snapshot, drop a work item's snapshot);
* :mod:`~gaffer.snapshots.backend`: the ``docker`` backend with snapshots.
"""
