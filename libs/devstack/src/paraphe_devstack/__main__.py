from paraphe_devstack.cli import main

main()
