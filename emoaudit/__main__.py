from emoaudit.cli import main

main()
