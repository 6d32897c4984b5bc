"""Build ``bookshop.sqlite``, the small database the ``text2sql`` recipe uses by default.

Run ``python make_bookshop.py [OUT]`` (default: next to this script). The content is fixed by
the lists below and one seeded generator, so the file's rows are the same on every run (the
unit tests rebuild it and compare row by row). Names and titles are made up for this project.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from datetime import date, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE authors (
  author_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  country TEXT NOT NULL,
  birth_year INTEGER
);
CREATE TABLE books (
  book_id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  author_id INTEGER NOT NULL REFERENCES authors(author_id),
  genre TEXT NOT NULL,
  published_year INTEGER NOT NULL,
  price REAL NOT NULL,
  pages INTEGER NOT NULL
);
CREATE TABLE customers (
  customer_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  country TEXT NOT NULL,
  email TEXT NOT NULL,
  joined_on DATE NOT NULL
);
CREATE TABLE orders (
  order_id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(customer_id),
  order_date DATE NOT NULL,
  status TEXT NOT NULL
);
CREATE TABLE order_items (
  order_id INTEGER NOT NULL REFERENCES orders(order_id),
  book_id INTEGER NOT NULL REFERENCES books(book_id),
  quantity INTEGER NOT NULL,
  unit_price REAL NOT NULL,
  PRIMARY KEY (order_id, book_id)
);
"""

AUTHORS = [
    ("Mara Lindqvist", "Sweden", 1961), ("Tomas Okafor", "Nigeria", 1975),
    ("Helen Marsh", "United Kingdom", 1948), ("Kenji Arata", "Japan", 1982),
    ("Lucia Ferrante", "Italy", 1970), ("Daniel Reyes", "Mexico", 1988),
    ("Ingrid Solberg", "Norway", 1955), ("Samuel Park", "United States", 1979),
    ("Amira Haddad", "Lebanon", 1984), ("Pierre Duval", "France", 1966),
    ("Olga Petrova", "Russia", 1959), ("Grace Mwangi", "Kenya", 1991),
]
GENRES = ["Fiction", "Mystery", "Science", "History", "Poetry", "Travel", "Children"]
TITLE_A = ["The Silent", "A Winter", "The Last", "Northern", "The Glass", "Hidden", "The Long",
           "A Quiet", "The Copper", "Distant"]
TITLE_B = ["Harbour", "Orchard", "Lighthouse", "River", "Garden", "Map", "Letters", "Bridge",
           "Forest", "Station"]
FIRST = ["Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Greta", "Hugo", "Iris", "Jonas",
         "Keiko", "Liam", "Maya", "Noah", "Olivia", "Pablo", "Quinn", "Rosa", "Sven", "Tara"]
LAST = ["Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito",
        "Jensen", "Kim", "Lopez", "Moreau", "Novak", "Ortiz", "Quist", "Rossi", "Silva"]
CITIES = [("Oslo", "Norway"), ("Lyon", "France"), ("Austin", "United States"),
          ("Osaka", "Japan"), ("Turin", "Italy"), ("Leeds", "United Kingdom"),
          ("Nairobi", "Kenya"), ("Puebla", "Mexico")]
STATUSES = ["delivered", "delivered", "delivered", "shipped", "pending", "cancelled"]


def build(path: Path) -> Path:
    """Write the database to ``path`` (replacing it) and return the path."""
    rng = random.Random(2025)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO authors VALUES (?, ?, ?, ?)",
                     [(i + 1, *a) for i, a in enumerate(AUTHORS)])
    titles = [f"{a} {b}" for a in TITLE_A for b in TITLE_B]
    rng.shuffle(titles)
    books = []
    for i in range(30):
        books.append((i + 1, titles[i], rng.randint(1, len(AUTHORS)), rng.choice(GENRES),
                      rng.randint(1990, 2024), round(rng.uniform(6, 45), 2),
                      rng.randint(90, 720)))
    conn.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?, ?, ?)", books)
    customers = []
    start = date(2019, 1, 1)
    for i in range(20):
        first, last = FIRST[i], rng.choice(LAST)
        city, country = rng.choice(CITIES)
        joined = start + timedelta(days=rng.randint(0, 1460))
        customers.append((i + 1, f"{first} {last}", city, country,
                          f"{first.lower()}.{last.lower()}@example.com", joined.isoformat()))
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", customers)
    items = []
    for order_id in range(1, 41):
        customer = rng.randint(1, 20)
        day = date(2023, 1, 1) + timedelta(days=rng.randint(0, 700))
        conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?)",
                     (order_id, customer, day.isoformat(), rng.choice(STATUSES)))
        for book_id in sorted(rng.sample(range(1, 31), rng.randint(1, 3))):
            items.append((order_id, book_id, rng.randint(1, 4), books[book_id - 1][5]))
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)", items)
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(
        "bookshop.sqlite")
    print(build(target))
