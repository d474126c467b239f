"""What runs inside the sandbox: load the job, prepare the repository, run the engine, push."""
