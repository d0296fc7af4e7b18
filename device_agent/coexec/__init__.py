"""Co-execution: several components consume one frame stream by work stealing; results are released in order."""
