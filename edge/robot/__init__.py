"""The robot application: the robot (buses, safety layers, cameras), action executors, the fixed-rate control
loop, its rate keeper and telemetry, and `drive`, which runs a policy on a robot. Loaded only when used."""
