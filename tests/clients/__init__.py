"""Real HTTP clients driving the sidecar: step scripts, their runners and the compat table."""
