"""A toy bank: accounts with balances, deposits and transfers under a policy."""

from __future__ import annotations

from typing import Any

from synthloom.tools.base import ToolError
from synthloom.tools.envs.base import StatefulEnvironment, tool

MAX_TRANSFER = 5_000.0
POLICY = f"""Bank policy:
1. Amounts are positive and have at most two decimals.
2. A transfer may not overdraw the source account.
3. A single transfer is at most {MAX_TRANSFER:.0f}.
4. Transfers between the same account are refused."""


class Bank(StatefulEnvironment):
    name = "bank"
    policy = POLICY

    def initial_state(self) -> dict[str, Any]:
        return {"accounts": {"A-100": {"owner": "alice", "balance": 1200.0},
                             "B-200": {"owner": "bob", "balance": 300.0},
                             "C-300": {"owner": "carol", "balance": 8000.0}},
                "log": []}

    def _account(self, account_id: str) -> dict[str, Any]:
        account = self.data["accounts"].get(account_id)
        if account is None:
            raise ToolError(f"no account {account_id!r}")
        return account

    @staticmethod
    def _amount(amount: float) -> float:
        if not isinstance(amount, (int, float)) or amount <= 0 or round(amount, 2) != amount:
            raise ToolError(f"policy 1: invalid amount {amount!r}")
        return float(amount)

    @tool
    def get_balance(self, account_id: str) -> dict[str, Any]:
        """The balance of an account.

        Args:
            account_id: The account's id, e.g. "A-100".
        """
        return {"account_id": account_id, "balance": self._account(account_id)["balance"]}

    @tool
    def deposit(self, account_id: str, amount: float) -> dict[str, Any]:
        """Deposit money into an account.

        Args:
            account_id: The account's id.
            amount: The amount to deposit.
        """
        account, value = self._account(account_id), self._amount(amount)
        account["balance"] = round(account["balance"] + value, 2)
        self.data["log"].append(["deposit", account_id, value])
        return {"account_id": account_id, "balance": account["balance"]}

    @tool
    def transfer(self, from_account: str, to_account: str, amount: float) -> dict[str, Any]:
        """Move money from one account to another.

        Args:
            from_account: The paying account's id.
            to_account: The receiving account's id.
            amount: The amount to move.
        """
        value = self._amount(amount)
        source, target = self._account(from_account), self._account(to_account)
        if from_account == to_account:
            raise ToolError("policy 4: transfer to the same account")
        if value > MAX_TRANSFER:
            raise ToolError(f"policy 3: {value} is over the limit of {MAX_TRANSFER:.0f}")
        if value > source["balance"]:
            raise ToolError(f"policy 2: {from_account} holds only {source['balance']}")
        source["balance"] = round(source["balance"] - value, 2)
        target["balance"] = round(target["balance"] + value, 2)
        self.data["log"].append(["transfer", from_account, to_account, value])
        return {"from_balance": source["balance"], "to_balance": target["balance"]}
