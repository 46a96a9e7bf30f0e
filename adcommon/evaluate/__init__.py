"""What a trained model's outputs become: maps, scores, metrics, pictures, result files."""
