"""The development and test stack: real servers on local ports, under a directory of ours.

Used by ``make run`` (the whole stack behind nginx) and by the test fixtures (each test gets its
own servers on free ports). It never touches the PostgreSQL, Redis or NATS a machine already
runs: it starts its own from the installed binaries, installing Debian's packages when missing.
"""
