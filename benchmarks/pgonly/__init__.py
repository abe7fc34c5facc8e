"""The comparator: the same HTTP flows as the engine on PostgreSQL alone (the design a team would otherwise
build). Benchmark code only: nothing in the product imports it."""
