"""EPEE demo: early-exit transformers in biomedicine (Gradio app; also the Hugging Face Space entry)."""

from epee_demo.ui import CSS, build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.launch(css=CSS)
