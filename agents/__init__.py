"""agents: a GPT-1 style decoder that learns the uniform distribution over legal
next tokens, its losses, weight averaging (EMA, BEMA) and policies."""
