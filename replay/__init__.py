"""Log replay: read rosbag2 bags (MCAP, sqlite3; damaged ones too), re-publish, re-evaluate, report.

Modules: `bag` (reading, damage accounting, decoding), `mcap_records` (the lenient MCAP walker),
`fleet` (robots' streams as arrays), `info`, `play`, `evaluate`, `metrics` + `report` + `plots`,
`export` (CSV); MAV teams: `team` (eval with the safety stage), `team_report`, `merge` (one log per
vehicle on one clock); flight logs: `flightlog` and its readers. No JAX anywhere; rclpy only in `play`.
"""
