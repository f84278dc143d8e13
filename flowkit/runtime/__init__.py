"""What runs in AWS Lambda. Must never import the DSL, the CLI, networkx or graphviz."""
