"""ROS 2 nodes, the fleet plan, message conversions and software-in-the-loop tooling."""
