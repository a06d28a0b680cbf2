"""Many runs at once: ``ltrank sweep`` and ``ltrank reproduce``.

A sweep is a list of independent runs, one per (recipe, seed), each executed as its own
``python -m ltrank train --resume`` process and judged by the ``record.json`` it leaves in its
run folder. Every run is idempotent (finished runs are skipped, interrupted ones resumed), so
rerunning the same sweep is the recovery plan after any crash or signal.

- :mod:`ltrank.sweep.plan`: recipes x seeds -> ordered runs (dependencies first);
- :mod:`ltrank.sweep.status`: what a run folder holds before a run, and what a run ended as;
- :mod:`ltrank.sweep.dispatch`: hands ready runs to an executor and collects the outcomes;
- :mod:`ltrank.sweep.local` / :mod:`ltrank.sweep.slurm`: the executors (processes here, or
  SLURM job arrays through submitit);
- :mod:`ltrank.sweep.view`: the live view and the final table.
"""
