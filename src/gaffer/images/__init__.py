"""Worker images: references (validation), and later validation jobs and snapshots."""
