// The console's script (issue 22).
