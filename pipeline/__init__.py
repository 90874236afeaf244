"""Flywheel: data, parameters and feedback in; safely deployed LLM versions out."""
