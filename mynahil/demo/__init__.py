"""The demo: the main job on embedded defaults, a roof module like the CLI that drives it.

``run`` walks cards through every wire this machine has; ``platform_stories`` and
``points_stories`` tell the MyKey platform's and the point system's stories over HTTP."""

from .run import DemoReport, FlowRun, run_card_flow, run_demo

__all__ = ["DemoReport", "FlowRun", "run_card_flow", "run_demo"]
