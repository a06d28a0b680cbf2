"""`ltrank reproduce TABLE`: sweep a thesis table's recipes, then compare the runs with the thesis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ltrank.cli.sweep import (
    AccountOpt,
    Cluster,
    ClusterOpt,
    CpusOpt,
    DataDirOpt,
    DeviceOpt,
    DryRunOpt,
    ExecutorKind,
    ExecutorOpt,
    FolderOpt,
    GpusOpt,
    MemOpt,
    OutOpt,
    ParallelOpt,
    PartitionOpt,
    QosOpt,
    RetryOpt,
    SetOpt,
    SlurmArgs,
    TimeOpt,
    WorkersOpt,
    checked_settings,
    execute,
    show_plan,
)
from ltrank.cli.train import parse_seeds
from ltrank.errors import LtrankError
from ltrank.run_folder import RECORD_FILENAME


def _list_tables(n_seeds: int) -> Table:
    from ltrank.reference import load_reference
    from ltrank.reference.tables import load_tables

    datasets = load_reference("thesis").datasets
    table = Table(title="thesis tables", title_justify="left", caption=f"runs: recipes x {n_seeds} seeds",
                  caption_justify="left")
    for col in ("table", "dataset", "about", "recipes", "runs"):
        table.add_column(col, justify="right" if col == "runs" else "left")
    for number, t in load_tables().tables.items():
        suffixes = ", ".join(r.removeprefix(f"{t.dataset}-") for r in t.recipes)
        title = datasets[t.dataset].title if t.dataset in datasets else t.dataset
        table.add_row(number, title, escape(t.topic), escape(suffixes), str(len(t.recipes) * n_seeds))
    return table


def command(
    table: Annotated[Optional[str], typer.Argument(metavar="TABLE", help="Thesis table number, 4.1 ... 4.12 (see --list).")] = None,
    list_tables: Annotated[bool, typer.Option("--list", help="Show the tables, their recipes and run counts.")] = False,
    seeds: Annotated[str, typer.Option("--seeds", metavar="0,1,2", help="Seeds of every recipe (the thesis used 3).")] = "0,1,2",
    out: OutOpt = Path("runs"),
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
    data_dir: DataDirOpt = None,
    overrides: SetOpt = None,
    executor: ExecutorOpt = ExecutorKind.local,
    dry_run: DryRunOpt = False,
    retry_failed: RetryOpt = False,
    slurm_partition: PartitionOpt = None,
    slurm_time: TimeOpt = None,
    slurm_gpus_per_task: GpusOpt = None,
    slurm_cpus_per_task: CpusOpt = None,
    slurm_mem_gb: MemOpt = None,
    slurm_array_parallelism: ParallelOpt = None,
    slurm_account: AccountOpt = None,
    slurm_qos: QosOpt = None,
    slurm_folder: FolderOpt = None,
    slurm_cluster: ClusterOpt = Cluster.slurm,
) -> None:
    """Reproduce a thesis table: sweep its recipes x seeds, then print it beside the thesis's numbers."""
    from ltrank.reference.tables import get_table
    from ltrank.sweep.plan import plan_runs
    from ltrank.sweep.view import console_for_output

    seed_list = parse_seeds(None, seeds)
    console = console_for_output()
    if list_tables:
        console.print(_list_tables(len(seed_list)))
        return
    if table is None:
        raise LtrankError("give a thesis table number, e.g. 'ltrank reproduce 4.12', or --list to see them")
    thesis_table = get_table(table)
    settings = checked_settings(out, workers, device, data_dir, overrides, executor, retry_failed,
                                SlurmArgs(slurm_partition, slurm_time, slurm_gpus_per_task, slurm_cpus_per_task,
                                          slurm_mem_gb, slurm_array_parallelism, slurm_account, slurm_qos,
                                          slurm_folder, slurm_cluster))
    runs = plan_runs(thesis_table.recipes, seed_list, out, settings.overrides)
    console.print(f"Table {table.strip()}: {thesis_table.topic} ({thesis_table.dataset}), "
                  f"{len(thesis_table.recipes)} recipes x {len(seed_list)} seeds", highlight=False)
    if dry_run:
        show_plan(runs, settings, console)
        return
    outcomes = execute(runs, settings, console)
    records = [o.run.run_dir / RECORD_FILENAME for o in outcomes if o.ok]
    if records:
        from ltrank.cli.choices import Groups
        from ltrank.cli.compare import Format, Metric
        from ltrank.cli.compare import command as compare

        console.print()
        # the table as 'ltrank compare <these runs> --reference thesis' prints it
        compare(records, groups=Groups.thirds, fmt=Format.table, reference="thesis", plot=None,
                metric=Metric.last, allow_mixed=False)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(code=1)
