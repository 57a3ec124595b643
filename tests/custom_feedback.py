"""A custom feedback provider, as a user would write one (env.feedback: {provider: custom,
custom_function: "tests.custom_feedback:count_boxes"}); tests/test_feedback.py runs it through the environment."""


def count_boxes(attempt, dialogue):
    """Says how many of the dialogue's answers so far were boxed; called after a wrong attempt."""
    boxed = sum(a.formatted for a in dialogue.attempts)
    left = dialogue.n_allowed - len(dialogue.attempts)
    return (
        f"<|im_end|>\n<|im_start|>system\nWrong. {boxed} boxed so far, {left} left.<|im_end|>\n<|im_start|>assistant\n"
    )


def no_end_of_turn(attempt, dialogue):
    """A broken provider: its text does not close the policy's turn."""
    return "Wrong."


NOT_A_FUNCTION = 42
