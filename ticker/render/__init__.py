"""HTML only: the widget, its board of rows, number formatting, sparklines and templates."""
