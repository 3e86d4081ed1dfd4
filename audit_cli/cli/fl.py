"""`audit fl train`: simulate a federation with FedAvg (the gold standard with --exclude-client)."""

from __future__ import annotations

from pathlib import Path

import typer

from audit_cli.cli.common import (
    FLAG,
    PAIR,
    OutputFormat,
    cli_errors,
    data_opt_option,
    data_option,
    data_root_option,
    device_option,
    format_option,
    output_option,
    overwrite_option,
    parse_pairs,
    print_json,
    progress_bar,
    progress_option,
    quiet_option,
    seed_option,
    stdout_console,
)
from audit_cli.cli.train import AUGMENT_HELP, print_result, train_summary
from audit_cli.errors import UsageError
from audit_cli.models.recipe import OPTIMIZERS, PARTITIONS, Federation, Recipe, check_momentum
from audit_cli.repair.fl_train import FederatedTrainRequest, fl_train_checkpoint
from audit_cli.repair.train_checkpoint import TrainRequest

LOCAL = "Local training (each client, each round)"


@cli_errors
def fl_train_cmd(
    output: Path = output_option("Checkpoint of the global model to write (.safetensors)."),
    data: str = data_option("digits", "Dataset name or a .parquet/.npz file."),
    data_opt: list[str] | None = data_opt_option(),
    data_root: Path | None = data_root_option(),
    download: bool = typer.Option(False, "--download", metavar=FLAG, help="Allow downloading a torchvision dataset."),
    arch: str = typer.Option("mlp", "--arch", metavar="NAME", help="Architecture name (audit archs)."),
    arch_arg: list[str] | None = typer.Option(None, "--arch-arg", metavar=PAIR, help="Architecture argument."),
    clients: int = typer.Option(10, "--clients", metavar="INT", help="Number of clients."),
    partition: str = typer.Option(
        "dirichlet", "--partition", metavar="|".join(PARTITIONS), help="How the training split is shared out."
    ),
    alpha: float = typer.Option(
        Federation.alpha, "--alpha", metavar="FLOAT", help="Dirichlet concentration (small: non-iid)."
    ),
    rounds: int = typer.Option(30, "--rounds", metavar="INT", help="FedAvg rounds."),
    exclude_client: list[int] | None = typer.Option(
        None, "--exclude-client", metavar="CLIENT", help="Train without this client (repeatable): the gold standard."
    ),
    optimizer: str = typer.Option("sgd", "--optimizer", metavar="|".join(OPTIMIZERS), help="Optimizer.",
                                  rich_help_panel=LOCAL),  # fmt: skip
    lr: float = typer.Option(0.1, "--lr", metavar="FLOAT", help="Learning rate.", rich_help_panel=LOCAL),
    momentum: float = typer.Option(Recipe.momentum, "--momentum", metavar="FLOAT", help="SGD momentum.",
                                   rich_help_panel=LOCAL),  # fmt: skip
    weight_decay: float = typer.Option(0.0, "--weight-decay", metavar="FLOAT", help="Weight decay.",
                                       rich_help_panel=LOCAL),  # fmt: skip
    local_epochs: int = typer.Option(1, "--local-epochs", metavar="INT", help="Epochs per round.",
                                     rich_help_panel=LOCAL),  # fmt: skip
    batch_size: int = typer.Option(16, "--batch-size", metavar="INT", help="Examples per step.",
                                   rich_help_panel=LOCAL),  # fmt: skip
    augmentation: str = typer.Option("none", "--augment", metavar="POLICY", help=AUGMENT_HELP, rich_help_panel=LOCAL),
    seed: int = seed_option(0, "Seed of the partition, the initial model and the clients' data order."),
    overwrite: bool = overwrite_option(),
    device: str = device_option(),
    quiet: bool = quiet_option(),
    progress: str = progress_option(),
    output_format: OutputFormat = format_option(),
) -> None:
    """Simulate a federation with FedAvg and write its global model; every client of a round trains in one
    vectorized ensemble."""
    check_momentum(optimizer, momentum, ("--momentum", "--optimizer"))
    if partition == "iid" and alpha != Federation.alpha:
        raise UsageError("--alpha is the Dirichlet partition's; --partition iid shares the examples out equally",
                         hint="drop --alpha, or pass --partition dirichlet")  # fmt: skip
    federation = Federation(clients=clients, partition=partition, alpha=alpha, rounds=rounds, seed=seed)
    recipe = Recipe(arch=arch, arch_args=parse_pairs(arch_arg, "--arch-arg"), optimizer=optimizer, lr=lr,
                    momentum=momentum, weight_decay=weight_decay, epochs=local_epochs, batch_size=batch_size,
                    augmentation=augmentation, seed=seed, federation=federation)  # fmt: skip
    request = FederatedTrainRequest(
        TrainRequest(out=output, data=data, data_options=parse_pairs(data_opt, "--data-opt"), data_root=data_root,
                     download=download, recipe=recipe, overwrite=overwrite, device=device),  # fmt: skip
        exclude_clients=tuple(exclude_client or ()),
    )
    with progress_bar("rounds", quiet, unit="rounds", mode=progress, every=10) as update:
        result = fl_train_checkpoint(request, progress=update)
    fed = result.meta.recipe.federation
    if output_format is OutputFormat.json:
        print_json(train_summary(result) | {"federation": fed.to_dict()})
        return
    stdout_console().print(f"federation: {fed.clients} clients ({fed.partition}"
                           + (f", alpha {fed.alpha}" if fed.partition == "dirichlet" else "")
                           + f"), {fed.rounds} rounds" + (f", without client(s) {list(fed.excluded)}" if fed.excluded
                                                          else ""))  # fmt: skip
    print_result(result)
