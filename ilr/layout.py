"""Where every output of a study lands, under the config's `results:` (README "Where the outputs land").

The one home of the results layout: the Snakemake rules (workflow/rules/common.smk) and the stages that
find files by name (the tables' EvalStore) both take their paths from here. Arguments may be Snakemake
wildcard patterns ("{method}"): the methods only join strings.
"""

from __future__ import annotations


class Layout:
    def __init__(self, results: str):
        self.root = str(results).rstrip("/")

    # -- data and models
    @property
    def data(self) -> str:
        return f"{self.root}/data"

    @property
    def train(self) -> str:
        return f"{self.data}/train.jsonl"

    @property
    def val(self) -> str:
        return f"{self.data}/val.jsonl"

    def bench_file(self, bench: str) -> str:
        return f"{self.data}/bench/{bench}.jsonl"

    # -- ability, difficulty
    def ability_file(self, model: str) -> str:
        return f"{self.root}/ability/{model}.json"

    def difficulty_file(self, group: str) -> str:
        return f"{self.root}/difficulty/{group}.jsonl"

    def difficulty_figure(self, group: str) -> str:
        return f"{self.figures}/difficulty_{group}.png"

    # -- training: runs/<method>/<group>/seed<S>/ (grpo/ppo/aipo: <group> is the model's name)
    def run_dir(self, method: str, group: str, seed) -> str:
        return f"{self.root}/runs/{method}/{group}/seed{seed}"

    def final_dir(self, method: str, group: str, seed, model: str) -> str:
        return f"{self.run_dir(method, group, seed)}/{model}/final"

    # -- evaluation: eval/<method>/<group>/<model>/seed<S>/<benchmark>.json (base models: eval/base/none/...)
    def eval_dir(self, method: str, group: str, model: str, seed) -> str:
        return self.eval_run_dir(f"{method}/{group}/{model}", seed)

    def eval_run_dir(self, run: str, seed) -> str:
        """`run` = method/group/model (the evaluation rules' one wildcard for the three)."""
        return f"{self.root}/eval/{run}/seed{seed}"

    def eval_file(self, method: str, group: str, model: str, seed, bench: str) -> str:
        return f"{self.eval_dir(method, group, model, seed)}/{bench}.json"

    def multi_agent_file(self, pair: str, bench: str) -> str:
        return f"{self.root}/multi_agent/{pair}/{bench}.json"

    # -- reports and logs
    @property
    def tables(self) -> str:
        return f"{self.root}/tables"

    @property
    def figures(self) -> str:
        return f"{self.root}/figures"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"
