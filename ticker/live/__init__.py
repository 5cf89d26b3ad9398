"""Live prices from exchange WebSocket streams: feeds (one module per exchange), the connection that runs
one, the hub that gates and merges their ticks, and the relay that shares them between instances."""
