"""Instance selection: the memory model (this session), step-time and cost planner (to come)."""
