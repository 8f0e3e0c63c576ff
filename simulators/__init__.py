"""Plant simulators: publish sensor readings for a plant registry over MQTT."""
