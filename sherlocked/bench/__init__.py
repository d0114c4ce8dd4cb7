"""The benchmark: speed, side by side in one run, on the same jobs: plain PyTorch, sherlocked solo runs, populations;
then what a user waits for: real multiruns of the command line.

    python -m sherlocked.bench                      # CPU: 64 MLP triples, then 16 CNNs, mnist_5k, 1 epoch of 125 steps
    python -m sherlocked.bench --model cnn          # the CNN shape alone (model=cnn, --cnn-members 16)
    python -m sherlocked.bench --device cuda --dataset fashion_mnist --members 576 --epochs 10 --baseline-members 8

(a) the original study's loop: one nn.Sequential at a time, SGD, data as tensors on the device;
(b) sequential solo runs through sherlocked (what the basic launcher does per job);
(c) populations of up to --group members (what hydra/launcher=population does).
(a) measures nothing but accuracy, so (b) and (c) run with diagnostics off; (c) runs once more
with the study's diagnostics on, to measure what they cost, and once per --compile mode
(compile=<mode>, sherlocked.training.compiled), whose first steps, where torch.compile compiles, are timed
apart: the time a run waits, and the speed after.
Each --model shape (conf/model: mlp, then cnn by default) is measured this way in turn, an MLP on --members jobs,
a shape with conv layers on --cnn-members; (a) trains each job's model as Population.export gives it (nn.Linear,
nn.Conv2d, nn.MaxPool2d, ... in an nn.Sequential).
Each does the same work per member-epoch (train steps + a test pass), so times per member-epoch
compare directly; the paths take turns, one population's worth of jobs at a time, so a machine
whose speed drifts during the run slows them alike. Also the achieved GFLOP/s of (c) against a
large fp32 matmul (an MLP) or conv2d (a CNN), and an MLP's against one step's own batched matmuls, run alone on
the same device.
Then (sweeps.py) the framework's overhead per job from one-step sweeps of two sizes
(--sweep-small and --sweep-jobs jobs, default 64 and 576: the `make sweep` shape), split into
phases, and the end-to-end time of one real multirun of the benchmark's shape.

Its modules: paths.py (the training paths, timed), sweeps.py (real multiruns of the command line),
scale.py (the report of a study of --scale runs), cli.py (the rounds and the figures), show.py
(the tables). It measures every
layer, so it may import any of them; nothing imports it.
"""
