"""The clock process: wakes up and asks the services to do what is due."""
