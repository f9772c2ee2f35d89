"""Read models built from published card events: balance, liability, breakage, fraud, audit."""
