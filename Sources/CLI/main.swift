print("portcullis: under construction")
