"""A checkout with loyalty points, as a shop's checkout code would do it with the Jifen SDK.

The customer has points from an earlier order. Their cart is quoted (what it will earn, how
many points may pay for it), points are held for part of the payment, the card payment
succeeds, so the hold is captured and the order earns (the part paid with points earns
nothing). Later the customer returns one item: the refund takes back that item's share of
the points earned and gives back its share of the points spent. The balance and the history
are printed at the end.

Run it against a database with Jifen's schema::

    jifen db upgrade --database-url sqlite:///shop.db
    python examples/checkout.py sqlite:///shop.db      # or set JIFEN_DATABASE_URL

It creates its program and customer when they are missing. Every step has a fixed order,
hold or refund id, so a second run changes nothing: each step answers its first result,
marked "replayed".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from loyalty import services
from loyalty.db import Database
from sdk import AlreadyExists, Jifen, LoyaltyError, ProgramNotFound

PROGRAM = "example-shop"
CUSTOMER = "cust-1001"


@dataclass(frozen=True)
class CartItem:
    """One line of the shop's cart: what Jifen needs (SKU, category, amount) and more."""

    sku: str
    name: str
    category: str
    quantity: int
    unit_minor: int  # price in fen (1/100 CNY)

    @property
    def amount_minor(self) -> int:
        """The line's total in fen."""
        return self.quantity * self.unit_minor


CART = [
    CartItem("USB-C-CABLE", "USB-C cable", "electronics", 1, 4900),
    CartItem("TSHIRT-BLK-M", "T-shirt, black", "apparel", 2, 9900),
    CartItem("COFFEE-1KG", "Coffee beans 1 kg", "grocery", 1, 15800),
]


def money(minor: int) -> str:
    """Fen as yuan, without floats: 40500 -> '405.00'."""
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d} CNY"


def replayed(result: object) -> str:
    """A note for results that a retry (here: a second run) answered from the first call."""
    return "  (replayed)" if getattr(result, "replayed", False) else ""


def create_shop_program(url: str) -> None:
    """The program this example needs: 1 point per yuan, 2 on electronics, 30% payable in
    points (100 points = 1 yuan), points expire at the end of the third month."""
    db = Database.from_url(url)
    try:
        services.create_program(
            db,
            code=PROGRAM,
            name="Example Shop",
            currency="CNY",
            timezone="Asia/Shanghai",
            redeem_max_share_bp=3000,
            rules={
                "base_ratio": "1",
                "category_ratios": {"electronics": "2"},
                "expiry": {"months": 3, "month_end": True},
            },
        )
    except AlreadyExists:
        pass  # another run created it meanwhile
    finally:
        db.dispose()


def open_client(url: str | None) -> Jifen:
    """A client for the example's program, creating the program on first use."""
    try:
        return Jifen(url, program=PROGRAM)
    except ProgramNotFound:
        create_shop_program(url or "")
        return Jifen(url, program=PROGRAM)


def checkout(jifen: Jifen) -> None:
    """The whole story, printed as the shop would show it."""
    jifen.enrol(member=CUSTOMER, email="li.wei@example.com")

    earlier = jifen.earn(
        member=CUSTOMER,
        order_id="EX-1000",
        lines=[{"amount_minor": 129900, "sku": "HEADPHONES-X1", "category": "electronics"}],
    )
    print(f"Earlier order EX-1000 earned {earlier.points_granted} points{replayed(earlier)}")

    lines = [
        {"amount_minor": item.amount_minor, "sku": item.sku, "category": item.category}
        for item in CART
    ]
    total = sum(item.amount_minor for item in CART)
    print("\nCart (order EX-1001)")
    for item in CART:
        print(f"  {item.quantity} x {item.name:<20} {item.sku:<14} {money(item.amount_minor)}")
    print(f"  {'Total':<40} {money(total)}")

    quote = jifen.quote(lines=lines, member=CUSTOMER)
    print(f"This order earns {quote.points} points")
    offer = jifen.quote_redemption(member=CUSTOMER, order_total_minor=total)
    print(
        f"You have {offer.available} points; up to {offer.max_points} of them "
        f"({money(offer.max_discount_minor)}) can pay for this order"
    )

    # The customer chooses to pay 2000 points; the checkout holds them before taking the card.
    hold = jifen.hold(member=CUSTOMER, order_id="EX-1001", points=2000, order_total_minor=total)
    card = total - hold.discount_minor
    print(
        f"\nHeld {hold.points} points = {money(hold.discount_minor)} off{replayed(hold)}; "
        f"charging {money(card)} to the card"
    )

    # The card payment succeeded: spend the held points and credit what the order earns.
    captured = jifen.capture(order_id="EX-1001")
    print(f"Payment succeeded: hold {captured.status}{replayed(captured)}")
    earned = jifen.earn(
        member=CUSTOMER,
        order_id="EX-1001",
        lines=lines,
        paid_with_points_minor=hold.discount_minor,
    )
    expires = earned.expires_at.date().isoformat() if earned.expires_at else "never"
    print(
        f"Order EX-1001 earned {earned.points_granted} points "
        f"(the part paid with points earns nothing), expiring {expires}{replayed(earned)}"
    )

    # Later the customer returns the coffee; the shop refunds its card share.
    coffee = CART[2].amount_minor
    refund_minor = coffee * card // total
    refund = jifen.refund(
        order_id="EX-1001",
        refund_id="RF-1001-1",
        amount_minor=refund_minor,
        succeeded=True,
    )
    print(
        f"\nRefunded {money(refund_minor)} for the coffee: {refund.points} earned points "
        f"taken back, {refund.returned} spent points given back ({refund.status})"
        f"{replayed(refund)}"
    )

    balance = jifen.balance(member=CUSTOMER)
    print(
        f"\nBalance of {CUSTOMER}: {balance.available} points available, "
        f"{balance.frozen} frozen, {balance.debt} owed, {balance.lifetime_earned} earned in all"
    )
    print("History (newest first):")
    for entry in jifen.history(member=CUSTOMER, limit=10).items:
        when = f"{entry.created_at:%Y-%m-%d %H:%M} UTC"
        print(f"  {when}  {entry.kind:<16} {entry.points:>+6}  {entry.reference}")


def main(argv: list[str]) -> int:
    """Run the checkout against the database named by ``argv[1]`` or $JIFEN_DATABASE_URL."""
    url = argv[1] if len(argv) > 1 else None
    try:
        with open_client(url) as jifen:
            checkout(jifen)
    except LoyaltyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        print("usage: python examples/checkout.py [DATABASE_URL]", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
