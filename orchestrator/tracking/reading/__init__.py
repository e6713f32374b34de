"""The read path of tracking: the queries the gateway serves (status, history,
metrics, estimates) and a stage's input for re-sends."""
