"""Federated learning and unlearning: FedAvg simulated K federations at a time, PUF
(unlearning by negated pseudo-gradients), and a Flower strategy that runs the same rounds
in a real deployment.

- ``partition``: which training examples each client holds (Dirichlet over labels, or iid).
- ``fedavg``: rounds of local training and weighted aggregation, every client of every
  simulated federation in one vectorized ensemble.
- ``mia``: the client-level membership attacks the PUF paper reports (SVC and loss threshold).
- ``flower``: ``PUFStrategy`` and a ClientApp for flwr (optional extra ``[flower]``).
"""
