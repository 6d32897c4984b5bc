"""A toy store: products with stock, orders that can be placed, cancelled and returned."""

from __future__ import annotations

from typing import Any

from synthloom.tools.base import ToolError
from synthloom.tools.envs.base import StatefulEnvironment, tool

POLICY = """Store policy:
1. An order needs at least one item; each item's quantity is at least 1 and at most the stock.
2. Only orders with status "pending" can be cancelled; cancelling puts the items back in stock.
3. Only "delivered" orders can be returned; the refund is the order's total.
4. Never change an order without the customer's explicit confirmation."""


class Store(StatefulEnvironment):
    name = "store"
    policy = POLICY

    def initial_state(self) -> dict[str, Any]:
        return {
            "products": {
                "p1": {"name": "notebook", "price": 3.5, "stock": 10},
                "p2": {"name": "pen", "price": 1.25, "stock": 40},
                "p3": {"name": "backpack", "price": 29.0, "stock": 2},
            },
            "orders": {"o1": {"items": {"p1": 2}, "total": 7.0, "status": "delivered"},
                       "o2": {"items": {"p2": 4}, "total": 5.0, "status": "pending"}},
            "next_order": 3,
        }

    @tool
    def list_products(self) -> list[dict[str, Any]]:
        """List the products with their id, name, price and stock."""
        return [{"id": pid, **p} for pid, p in sorted(self.data["products"].items())]

    @tool
    def get_order(self, order_id: str) -> dict[str, Any]:
        """Look up an order.

        Args:
            order_id: The order's id, e.g. "o1".
        """
        order = self.data["orders"].get(order_id)
        if order is None:
            raise ToolError(f"no order {order_id!r}")
        return {"id": order_id, **order}

    @tool
    def place_order(self, items: dict[str, int]) -> dict[str, Any]:
        """Place an order.

        Args:
            items: Quantities by product id, e.g. {"p1": 2}.
        """
        products = self.data["products"]
        if not items:
            raise ToolError("policy 1: an order needs at least one item")
        for pid, qty in items.items():
            if pid not in products:
                raise ToolError(f"no product {pid!r}")
            if not isinstance(qty, int) or qty < 1 or qty > products[pid]["stock"]:
                raise ToolError(f"policy 1: quantity {qty!r} of {pid} not available "
                                f"(stock {products[pid]['stock']})")
        for pid, qty in items.items():
            products[pid]["stock"] -= qty
        order_id = f"o{self.data['next_order']}"
        self.data["next_order"] += 1
        total = round(sum(products[p]["price"] * q for p, q in items.items()), 2)
        self.data["orders"][order_id] = {"items": dict(items), "total": total,
                                         "status": "pending"}
        return {"id": order_id, "total": total, "status": "pending"}

    @tool
    def cancel_order(self, order_id: str) -> dict[str, Any]:
        """Cancel a pending order; its items go back in stock.

        Args:
            order_id: The order's id.
        """
        order = self.get_order(order_id)
        if order["status"] != "pending":
            raise ToolError(f"policy 2: order {order_id} is {order['status']}, not pending")
        for pid, qty in order["items"].items():
            self.data["products"][pid]["stock"] += qty
        self.data["orders"][order_id]["status"] = "cancelled"
        return {"id": order_id, "status": "cancelled"}

    @tool
    def return_order(self, order_id: str) -> dict[str, Any]:
        """Return a delivered order for a refund of its total.

        Args:
            order_id: The order's id.
        """
        order = self.get_order(order_id)
        if order["status"] != "delivered":
            raise ToolError(f"policy 3: order {order_id} is {order['status']}, not delivered")
        self.data["orders"][order_id]["status"] = "returned"
        return {"id": order_id, "status": "returned", "refund": order["total"]}
