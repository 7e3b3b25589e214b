# Shortcuts for those who have make; ./dev does the work.
.PHONY: run test lint
run:
	./dev run
test:
	./dev test
lint:
	./dev lint
