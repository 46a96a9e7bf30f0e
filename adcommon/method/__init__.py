"""A method's lifecycle: the engine contract, training, evaluation and export mains, script entries."""
