"""R1 Distill Lab's shared code: one module per stage of the pipeline.

==================  ==========================================================  ========
module              what it holds                                               taught in
==================  ==========================================================  ========
``config``          profiles (tiny / colab), seeds, device and dtype             01
``tasks``           the task world: problems, splits, the verifier               01
``tokenizer``       the character tokenizer (and loading hub tokenizers)         01
``models``          teacher / student / reward / value model factories           01
``artifacts``       atomic artifact folders with manifests, results.json         01
``theory``          soft-label vs data distillation demos                        01
``generation``      batched generation and verifier-based evaluation             01, 03
``sft``             supervised fine-tuning with TRL's SFTTrainer                 02, 04
``gsm8k``           GSM8K answer extraction for the colab profile                03
``memory_planner``  GPU memory estimates for the colab profile                   07 (all)
``progress``        progress bars that redraw sparingly (safe in long cells)     all
``standins``        offline stand-ins for colab's checkpoints (colab-dryrun)     CI
==================  ==========================================================  ========

The two GSM8K helpers are exported here because every notebook's colab path uses them.
"""

from .gsm8k import extract_answer, is_correct

__all__ = ["extract_answer", "is_correct"]
__version__ = "0.1.0"
