"""What `python -m sherlocked.train --help` says (conf/train.yaml's hydra.help.template names it).

Kept here, not in the YAML: Hydra copies its whole config into every job's .hydra/hydra.yaml, and a
one-line interpolation there is cheaper to write, and to write byte for byte alike, than this text.
"""

from omegaconf import OmegaConf

from sherlocked.spec.activations import ACTIVATIONS

EXAMPLES = (
    "python -m sherlocked.train act2=sigmoid act3=relu dataset=mnist_5k trainer.max_epochs=2",
    "python -m sherlocked.train -m hydra/launcher=population study=demo dataset=mnist_5k "
    "act1=relu,tanh,sigmoid,selu act2=relu,tanh,sigmoid,selu act3=relu,tanh,sigmoid,selu 'seed=range(5)' "
    "trainer.max_epochs=5",
    "python -m sherlocked.train -m hydra/launcher=population study=bn dataset=mnist_5k act2=sigmoid act3=relu "
    "model.batch_norm=none,all,last 'seed=range(3)'",
    "python -m sherlocked.train experiment=cifar10_4layer act4=tanh model/optimizer=adam",
    "python -m sherlocked.report outputs/sweeps/demo",
)


def text() -> str:
    """Hydra's help template: it fills in $APP_CONFIG_GROUPS and $CONFIG."""
    examples = "\n".join(f"  {example}" for example in EXAMPLES)
    return f"""sherlocked: how activation functions interact across the layers of a neural network.
One command trains the study's 784-500-256-10 MLP on MNIST (SGD, batch 32, 10 epochs), one
activation per layer; -m sweeps any grid of runs, each leaving result.json and TensorBoard events.

== Config groups (choose one option each: group=option) ==
$APP_CONFIG_GROUPS

== The config (override any key: model.optimizer.lr=0.1, trainer.max_epochs=2) ==
$CONFIG
Activations for act1, act2, ... ('a|b' splits a layer's units in halves between two):
  {", ".join(ACTIVATIONS)}

Examples:
{examples}

README.md and docs/ have the full study, sweeps on every GPU or a cluster, TensorBoard and the report;
Hydra's own flags: --hydra-help.
"""


# conf/train.yaml: hydra.help.template (registered wherever Hydra runs: its plugin scan imports the launcher's module)
OmegaConf.register_new_resolver("sherlocked.hydra_side.usage", text, replace=True)
