"""Instance selection: per-GPU memory (analytic and traced), step time and cost, and the planner that searches
instance type x count x parallel layout for the cheapest configuration that fits."""
