import click

@click.group()
def main():
    """vqcodec"""
