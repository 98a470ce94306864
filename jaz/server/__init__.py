"""`jaz server`: the scheduling daemon around the engine (config, scheduler loop, API)."""
