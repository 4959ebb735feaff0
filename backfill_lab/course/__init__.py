"""The course: exercise scenarios, the checklist rules, outcome simulation, self-check, quiz,
progress and drills. It builds on the engine, the demo pipelines and the display."""
