"""Media library: ffmpeg tooling and storage backends. Imports nothing from app/."""
