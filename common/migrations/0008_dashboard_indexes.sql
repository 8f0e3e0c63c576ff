-- Indexes for the dashboards' filters (deploy/grafana/dashboards): alarm KPIs select
-- journal rows by action and time; the sensor detail selects anomalies by sensor and time.
CREATE INDEX IF NOT EXISTS alarm_journal_action_time_idx ON alarm_journal (action, time);
CREATE INDEX IF NOT EXISTS anomalies_sensor_time_idx ON anomalies (sensor_id, time);
CREATE INDEX IF NOT EXISTS alarms_unit_idx ON alarms (unit_id);
