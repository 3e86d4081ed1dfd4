"""The plain functions behind the commands that make models: audit train, audit fl train,
audit unlearn (weights, federated clients, output filters), the Flower strategy and audit inspect."""
