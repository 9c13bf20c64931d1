print("stegastamp")
