from lens_tui.cli import main

main()
