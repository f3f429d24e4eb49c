"""Run bodies that combine runs (the main job). The single-run bodies are in ``tdml.pipelines``."""
